"""Stages that use trained models outside the pipeline's own files: predict, export."""
