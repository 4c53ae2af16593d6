"""Pipeline stages: each a function over files in a run folder, and a CLI command."""
