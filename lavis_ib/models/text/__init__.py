"""Text around the model: tokenizers, prompt templates, input checks, and the batching that turns records into
token tensors (the collator the DataLoader calls)."""
