"""Dataset importers: raw release files -> one tensor store per dataset."""
