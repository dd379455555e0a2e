"""Registry domain logic, one module per record kind; routes call these, nothing else."""
