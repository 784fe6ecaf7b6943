# A CPU smoke run of mmseg_deeplabv3_genas.py: the same DeepLabV3 on a tiny genas backbone (NB201, C=8, one cell per
# stage, output stride 8), 64x64 crops, 30 iterations and one validation, to check a setup before a real run:
#   python tools/train.py configs/dense/mmseg_deeplabv3_genas_tiny.py --cfg-options \
#       train_dataloader.dataset.data_root=PATH val_dataloader.dataset.data_root=PATH
# (mmseg's tools/train.py; PATH holds Cityscapes' leftImg8bit/ and gtFine/ *_labelTrainIds.png).
# tests/test_dense_mmseg_train.py trains it with MMEngine's Runner on a generated folder, also under torchrun.
_base_ = ["./mmseg_deeplabv3_genas.py"]

data_root = "data/cityscapes/"
crop_size = (64, 64)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="RandomResize", scale=(128, 64), ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(128, 64), keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root, pipeline=train_pipeline)
)
val_dataloader = dict(
    num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root, pipeline=test_pipeline)
)
test_dataloader = val_dataloader

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch="|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        channels=8,
        layers=1,
    ),
    decode_head=dict(in_channels=64, channels=16),  # 8C: the last level of nb201 at C=8
)

max_iters = 30
optim_wrapper = dict(optimizer=dict(lr=0.05))  # so few steps need a larger one than the recipe's 0.01
param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=max_iters))
log_processor = dict(window_size=1)  # each iteration's own loss in vis_data/scalars.json
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
randomness = dict(seed=0)
