"""Building blocks of the segmentation networks, one module per kind."""
from .aspp import ASPP, ImagePooling
from .conv import AtrousConv2d, ConvBNReLU, DepthwiseSeparableConv
from .fusion import ConcatSkip, SumSkip, center_crop
from .upsample import (BedOfNailsUpsample, BilinearUpsample, MaxPoolWithIndices, MaxUnpool, NearestUpsample,
                       TransposedConvUpsample, bilinear_kernel)

__all__ = ["ASPP", "ImagePooling", "AtrousConv2d", "ConvBNReLU", "DepthwiseSeparableConv", "ConcatSkip",
           "SumSkip", "center_crop", "BedOfNailsUpsample", "BilinearUpsample", "MaxPoolWithIndices", "MaxUnpool",
           "NearestUpsample", "TransposedConvUpsample", "bilinear_kernel"]
