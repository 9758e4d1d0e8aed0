"""The train stage: preprocessed data -> a run folder with checkpoints, EMA generator and logs.

Exact resume by construction: every step's Jittor/numpy randomness comes from
`jt.set_global_seed(seed + step)`, and each epoch's data order and flips from
`numpy.random.default_rng([seed, epoch])`. A checkpoint therefore needs only the weights, the
Adam moments and the step to continue exactly as an uninterrupted run would.

    data.py      TrainData: which samples each step of each rank sees
    schedule.py  Schedule: learning rate, EMA decay, total steps, what is due after a step
    trainer.py   Trainer: model, optimisers, the G/D step, checkpoint state
    resume.py    what a resume must share with its checkpoint; which checkpoint to resume
    writer.py    RunWriter: the run folder's files (rank 0 alone)
    samples.py   sample grids
    loop.py      run_train: check inputs, claim the folder, train

Importing this package loads no Jittor (run_train imports it).
"""

from .data import TrainData, batch_to_vars
from .loop import TrainingInterrupted, run_train
from .resume import RESUME_FREE_KEYS, resume_hash
from .schedule import Schedule, lr_factor
from .trainer import Trainer

__all__ = ["RESUME_FREE_KEYS", "Schedule", "TrainData", "Trainer", "TrainingInterrupted",
           "batch_to_vars", "lr_factor", "resume_hash", "run_train"]
