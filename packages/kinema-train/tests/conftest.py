import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tiny.py and the torchrun worker


@pytest.fixture(autouse=True)
def _quiet_threads():
    import torch

    torch.set_num_threads(1)
