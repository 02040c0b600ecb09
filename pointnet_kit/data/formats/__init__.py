"""The built-in dataset formats, one reader per file; importing this package registers them.

:data:`DETECTION_ORDER` is the order in which folders are tried: most specific layout first.
"""

from . import (  # noqa: F401  (registers the formats)
    class_folders,
    embedded,
    hdf5,
    modelnet_off,
    normal_resampled,
    scanobjectnn,
    shapenetpart_hdf5,
    shapenetpart_normal,
    shapenetpart_v0,
)

DETECTION_ORDER = (
    "embedded",  # by name: default
    "embedded_parts",  # by name: default_parts
    "scanobjectnn",  # training_/test_objectdataset*.h5
    "shapenetpart_hdf5",  # *.h5 with pid, or all_object_categories.txt
    "hdf5",  # any other *.h5 folder
    "shapenetpart_v0_normal",  # synsetoffset2category.txt + <synset>/*.txt
    "shapenetpart_v0",  # synsetoffset2category.txt + <synset>/points/*.pts
    "normal_resampled",  # modelnet*_shape_names.txt
    "class_folders",  # <class>/ folders holding at least one non-OFF file
    "off",  # OFF meshes only (ModelNet)
)
