"""
Test-only launcher: ``dit4dit_train.train`` under accelerate's FSDP2 on CPU processes (gloo).

accelerate 1.15 never turns FSDP on for a CPU run: with ``distributed_type: FSDP`` and CPU
processes it prepares DDP instead (state.py switches to FSDP from GPU-like types only). This
shim switches the constructed Accelerator to FSDP with the plugin the launcher's FSDP_* variables
describe (the shipped config/accelerate/fsdp2_bf16.yaml), so the training loop's sharded path
(prepare, bf16 policy, activation checkpointing, sharded save/resume, full-state export) runs
here as it runs on GPUs. It reports what each rank holds, for the test to check.
"""

import sys

import accelerate
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
import torch

_Accelerator = accelerate.Accelerator


class CpuFsdpAccelerator(_Accelerator):
    """An Accelerator switched to FSDP after construction (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        """Construct as usual, then switch to FSDP."""
        super().__init__(*args, **kwargs)
        plugin = FullyShardedDataParallelPlugin()
        if self.mixed_precision != 'no':
            plugin.set_mixed_precision(self.mixed_precision)
        self.state.distributed_type = DistributedType.FSDP
        self.state.fsdp_plugin = plugin
        PartialState._shared_state['distributed_type'] = DistributedType.FSDP

    def prepare(self, *args, **kwargs):
        """Prepare, then report the shard of the model this rank holds."""
        out = super().prepare(*args, **kwargs)
        model = out[0]
        local = sum(p.to_local().numel() if hasattr(p, 'to_local') else p.numel()
                    for p in model.parameters())
        total = sum(p.numel() for p in model.parameters())
        wrapped = sum(1 for m in model.modules() if type(m).__name__.endswith('CheckpointWrapper'))
        policy = self.state.fsdp_plugin.mixed_precision_policy
        dtypes = ('none' if policy is None else
                  f'{policy.param_dtype}/{policy.reduce_dtype}/{policy.output_dtype}')
        print(f'[shard] rank {self.process_index}: {type(model).__name__} holds {local} of '
              f'{total} parameters; {wrapped} checkpointed blocks; param/reduce/output dtypes '
              f'{dtypes}', flush=True)
        return out


accelerate.Accelerator = CpuFsdpAccelerator
torch.set_num_threads(1)

if __name__ == '__main__':
    from dit4dit_train.train import main
    sys.exit(main())
