"""The training engine shared by teacher and student: a small trainer with hooks, config, checkpoints."""
