"""Data contract: manifest, clinical table, MRI, genotypes, synthetic cohort."""
