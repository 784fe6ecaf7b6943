# DeepLabV3 (MMSegmentation) on a genas backbone: mmseg's deeplabv3_r50-d8 Cityscapes 512x1024 40k recipe with
# the ResNet-50-D8 swapped for the found network in the dense geometry, dilated to output stride 8.
# Train with mmseg's tools/train.py (or `mim train mmseg configs/dense/mmseg_deeplabv3_genas.py`) from the genas
# repository root, so that `genas.export.mmseg` (which registers GenasBackbone) imports. See docs/export.md, "Segmentation".
_base_ = [
    "mmseg::_base_/datasets/cityscapes.py",
    "mmseg::_base_/default_runtime.py",
    "mmseg::_base_/schedules/schedule_40k.py",
]
custom_imports = dict(imports=["genas.export.mmseg"], allow_failed_imports=False)

crop_size = (512, 1024)
norm_cfg = dict(type="BN", requires_grad=True)  # SyncBN on several GPUs
data_preprocessor = dict(
    type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
    pad_val=0, seg_pad_val=255, size=crop_size,
)
model = dict(
    type="EncoderDecoder",
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type="GenasBackbone",
        arch="best_arch.json",  # or an NB201 string / DARTS Genotype; None with a Pretrained init_cfg
        network=None,  # the architecture space's (nb201 / darts); "darts_imagenet" for an ImageNet retrain
        channels=None,  # None: the network's default C
        geometry="dense",
        output_stride=8,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        # init_cfg=dict(type="Pretrained", checkpoint="runs/retrain-.../model.pt"): a genas network checkpoint; unset
        # here, as MMEngine cannot merge a config's dict into a base's None
    ),
    decode_head=dict(
        type="ASPPHead",
        in_channels=128,  # the last level's channels: 8C for nb201 (C=16), see the backbone's feature_info
        in_index=3,
        channels=512,
        dilations=(1, 12, 24, 36),
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)
