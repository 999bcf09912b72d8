"""Feature networks of the reconstruction metrics, as plain PyTorch modules.

torchvision (and timm, which pulls it) does not install against the CPU torch eegalign runs on,
so the four ImageNet networks of the MindEye/ATM metric table are written out here, one paper
per file, with parameter names equal to torchvision's so that the published weight files load
with ``torch.load(..., weights_only=True)`` and ``load_state_dict(strict=True)``:

- :mod:`.alexnet` -- AlexNet (``alexnet-owt-7be5be79.pth``): layers 2 and 5;
- :mod:`.inception` -- Inception-v3 (``inception_v3_google-0cc3c7bd.pth``): 2048-d pool;
- :mod:`.efficientnet` -- EfficientNet-B1 (``efficientnet_b1-c27df63c.pth``): 1280-d pool;
- :mod:`.resnet` -- ResNet-50 (SwAV ``swav_800ep_pretrain.pth.tar``): 2048-d pool.

Every class has ``from_state_dict(sd)``: the widths and depths are read from the weights' shapes,
so the same code builds the full-size network from a published file and a tiny one from a test's
random weights. :mod:`.weights` reads weight files safely. Importing this package imports torch.
"""
