"""The one error every checkpoint problem becomes."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message names the file and says why."""
