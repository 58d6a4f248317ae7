"""Training: the image stage (`vstpipe train`) and the paper's affinity finetune (`finetune`)."""
