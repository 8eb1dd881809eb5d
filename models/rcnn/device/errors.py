"""The error every device question ends in when the answer is "not here"."""


class DeviceError(RuntimeError):
    """A device, card or precision was asked for that this machine cannot give."""
