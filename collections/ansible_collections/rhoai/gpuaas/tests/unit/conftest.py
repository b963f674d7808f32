# -*- coding: utf-8 -*-
"""Make ``ansible_collections.rhoai.gpuaas`` importable when pytest is run directly.

``ansible_collections`` is a namespace package: the directory holding it must be on
sys.path. ansible-test arranges that itself; plain ``pytest`` (from the repository's
``collections/`` directory) does not, so add it here.
"""

import os
import sys

_COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
if _COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, _COLLECTIONS_ROOT)
