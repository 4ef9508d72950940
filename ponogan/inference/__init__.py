"""Using a trained translator: the :class:`~ponogan.inference.pipeline.TranslationPipeline` (load a run
folder, translate PIL images or tensors), folder translation (``translate``) and export to ONNX or a
``torch.export`` program (``export``)."""
