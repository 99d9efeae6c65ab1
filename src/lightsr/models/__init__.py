"""Models: architectures as plug-ins (one file each under ``archs/``, each with its detector and
descriptor; :mod:`~lightsr.models.base` defines the interface, :mod:`~lightsr.models.registry`
collects them), the catalog of named models (:mod:`~lightsr.models.catalog`, torch-free),
detection (:mod:`~lightsr.models.detect`), checkpoint files, and the name-or-path resolver."""
