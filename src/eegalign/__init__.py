"""eegalign: align EEG encoders with CLIP image/text space and generate images from EEG.

Nothing heavy is imported here: `import eegalign` is cheap and has no side effects.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
