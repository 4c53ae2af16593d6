"""Launching the pipeline somewhere else than this process: a SLURM cluster or a local job (submitit)."""
