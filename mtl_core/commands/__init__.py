"""Every command behind `python -m mtl_core <command>` (mtl_core/__main__.py lists them), one module each."""
