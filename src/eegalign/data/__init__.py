"""The data layer: sources -> preprocess -> cache -> targets -> datamodule."""
