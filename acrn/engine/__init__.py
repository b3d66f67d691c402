"""Training loop pieces: LR schedule, checkpoint/resume, distributed helpers, logging.

Small modules by concern, plain PyTorch (in the spirit of torchvision's
``references/detection``); the CLIs ``acrn.train`` / ``acrn.infer`` put them together.
"""
