import os

import torch

# The suite's tensors are small: on a 2-core machine (CI's), intra-op threads cost more than they
# save and make timings depend on other load. Subprocesses the tests start inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
