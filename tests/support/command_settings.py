"""Settings for running management commands in a subprocess: the test settings with
``PRISM_STORAGE`` taken from the ``PRISM_TEST_STORAGE`` environment variable (JSON)."""

import json
import os

from tests.settings import *  # noqa: F403

PRISM_STORAGE = json.loads(os.environ["PRISM_TEST_STORAGE"])
