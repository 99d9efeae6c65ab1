"""Models: architectures (one file each under ``archs/``), the registry of named models,
checkpoint files, detection of a checkpoint's architecture, and the name-or-path resolver."""
