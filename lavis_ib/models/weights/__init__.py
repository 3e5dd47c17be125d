"""Weights in and out: reading LAVIS `.pth` / safetensors files into a model with a report, the LAVIS ⇄ Hugging Face
name maps (and their command line), and loading / exporting whole Hugging Face directories."""
