"""What one measured run needs before it starts, split by job: its command line (`args`), its
config (`lookup`), its data (`datasets`) and the run resolved from them (`build`)."""
