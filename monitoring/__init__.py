"""Evidence: drift, bias and validation reports computed by workers."""
