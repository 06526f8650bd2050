"""psum.nets: float networks, data sets and training (LeNet5, AlexNet, ResNet18, a small ViT; digits, CIFAR, ImageNet).

Knows nothing of MAC arithmetic: emulation is :mod:`psum.golden.emulation`.
"""
