import torch

# Tiny tensors: extra intra-op threads only contend with other processes on small machines.
torch.set_num_threads(1)
