# A trivial trial for hyperband-1200.yaml: its parameters come as KUBEFLOW_TRAINER_OPT_* variables.
import math
import os

lr = float(os.environ["KUBEFLOW_TRAINER_OPT_LR"])
epochs = int(float(os.environ["KUBEFLOW_TRAINER_OPT_EPOCHS"]))
for e in range(1, epochs + 1):
    print(f"val_loss={(math.log10(lr) + 2) ** 2 + 1 / e}")
print(f"latency={epochs / 3}")
