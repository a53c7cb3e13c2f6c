//! The messages of Caffe's `caffe.proto` that a net description or a
//! trained model uses, as a protobuf descriptor built at run time: the
//! `protobuf` crate parses both the text format (`.prototxt`) and the wire
//! format (`.caffemodel`) against it, so no `protoc` runs at build time.
//!
//! Names, field numbers, types and defaults are those of BVLC Caffe's
//! `src/caffe/proto/caffe.proto`. Layer parameter messages the importer
//! never maps are left out unless deploy and train files commonly carry
//! them (data sources, transforms, fillers, loss and accuracy settings), so
//! that such files parse and their layers get the importer's own message.

use protobuf::descriptor::field_descriptor_proto::{Label, Type};
use protobuf::descriptor::{
    DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
    FileDescriptorProto,
};
use protobuf::reflect::{FileDescriptor, MessageDescriptor};
use std::sync::OnceLock;

/// A field's type: a scalar, or a message or enum by its name in the
/// `caffe` package (`PoolingParameter.PoolMethod` for a nested enum).
#[derive(Clone, Copy, Debug)]
enum Ty {
    I32,
    U32,
    I64,
    F32,
    F64,
    Bool,
    Str,
    Msg(&'static str),
    Enum(&'static str),
}

#[derive(Clone, Copy, Debug)]
struct Field {
    name: &'static str,
    number: i32,
    ty: Ty,
    repeated: bool,
    /// The proto2 default, as `caffe.proto` writes it.
    default: Option<&'static str>,
}

const fn opt(name: &'static str, number: i32, ty: Ty) -> Field {
    Field { name, number, ty, repeated: false, default: None }
}

const fn def(name: &'static str, number: i32, ty: Ty, default: &'static str) -> Field {
    Field { name, number, ty, repeated: false, default: Some(default) }
}

const fn rep(name: &'static str, number: i32, ty: Ty) -> Field {
    Field { name, number, ty, repeated: true, default: None }
}

struct Enum {
    name: &'static str,
    values: &'static [(&'static str, i32)],
}

struct Message {
    name: &'static str,
    fields: &'static [Field],
    enums: &'static [Enum],
}

use Ty::{Bool, Enum as E, Msg as M, Str, F32, F64, I32, I64, U32};

const ENGINE: Enum = Enum { name: "Engine", values: &[("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)] };

/// The V1 layer types, in `V1LayerParameter.LayerType`.
const V1_LAYER_TYPES: &[(&str, i32)] = &[
    ("NONE", 0),
    ("ABSVAL", 35),
    ("ACCURACY", 1),
    ("ARGMAX", 30),
    ("BNLL", 2),
    ("CONCAT", 3),
    ("CONTRASTIVE_LOSS", 37),
    ("CONVOLUTION", 4),
    ("DATA", 5),
    ("DECONVOLUTION", 39),
    ("DROPOUT", 6),
    ("DUMMY_DATA", 32),
    ("EUCLIDEAN_LOSS", 7),
    ("ELTWISE", 25),
    ("EXP", 38),
    ("FLATTEN", 8),
    ("HDF5_DATA", 9),
    ("HDF5_OUTPUT", 10),
    ("HINGE_LOSS", 28),
    ("IM2COL", 11),
    ("IMAGE_DATA", 12),
    ("INFOGAIN_LOSS", 13),
    ("INNER_PRODUCT", 14),
    ("LRN", 15),
    ("MEMORY_DATA", 29),
    ("MULTINOMIAL_LOGISTIC_LOSS", 16),
    ("MVN", 34),
    ("POOLING", 17),
    ("POWER", 26),
    ("RELU", 18),
    ("SIGMOID", 19),
    ("SIGMOID_CROSS_ENTROPY_LOSS", 27),
    ("SILENCE", 36),
    ("SOFTMAX", 20),
    ("SOFTMAX_LOSS", 21),
    ("SPLIT", 22),
    ("SLICE", 33),
    ("TANH", 23),
    ("WINDOW_DATA", 24),
    ("THRESHOLD", 31),
];

/// A V1 layer type's name in the current format, as Caffe's upgrade
/// writes it (`CONVOLUTION` is `Convolution`, `SOFTMAX_LOSS` is
/// `SoftmaxWithLoss`).
pub(crate) fn v1_type_name(v1: &str) -> Option<&'static str> {
    Some(match v1 {
        "ABSVAL" => "AbsVal",
        "ACCURACY" => "Accuracy",
        "ARGMAX" => "ArgMax",
        "BNLL" => "BNLL",
        "CONCAT" => "Concat",
        "CONTRASTIVE_LOSS" => "ContrastiveLoss",
        "CONVOLUTION" => "Convolution",
        "DATA" => "Data",
        "DECONVOLUTION" => "Deconvolution",
        "DROPOUT" => "Dropout",
        "DUMMY_DATA" => "DummyData",
        "EUCLIDEAN_LOSS" => "EuclideanLoss",
        "ELTWISE" => "Eltwise",
        "EXP" => "Exp",
        "FLATTEN" => "Flatten",
        "HDF5_DATA" => "HDF5Data",
        "HDF5_OUTPUT" => "HDF5Output",
        "HINGE_LOSS" => "HingeLoss",
        "IM2COL" => "Im2col",
        "IMAGE_DATA" => "ImageData",
        "INFOGAIN_LOSS" => "InfogainLoss",
        "INNER_PRODUCT" => "InnerProduct",
        "LRN" => "LRN",
        "MEMORY_DATA" => "MemoryData",
        "MULTINOMIAL_LOGISTIC_LOSS" => "MultinomialLogisticLoss",
        "MVN" => "MVN",
        "POOLING" => "Pooling",
        "POWER" => "Power",
        "RELU" => "ReLU",
        "SIGMOID" => "Sigmoid",
        "SIGMOID_CROSS_ENTROPY_LOSS" => "SigmoidCrossEntropyLoss",
        "SILENCE" => "Silence",
        "SOFTMAX" => "Softmax",
        "SOFTMAX_LOSS" => "SoftmaxWithLoss",
        "SPLIT" => "Split",
        "SLICE" => "Slice",
        "TANH" => "TanH",
        "WINDOW_DATA" => "WindowData",
        "THRESHOLD" => "Threshold",
        _ => return None,
    })
}

/// The layer parameter messages and their field numbers in
/// `LayerParameter` and in `V1LayerParameter` (0: not in V1).
const LAYER_PARAMS: &[(&str, &str, i32, i32)] = &[
    ("transform_param", "TransformationParameter", 100, 36),
    ("loss_param", "LossParameter", 101, 42),
    ("accuracy_param", "AccuracyParameter", 102, 27),
    ("batch_norm_param", "BatchNormParameter", 139, 0),
    ("concat_param", "ConcatParameter", 104, 9),
    ("convolution_param", "ConvolutionParameter", 106, 10),
    ("data_param", "DataParameter", 107, 11),
    ("dropout_param", "DropoutParameter", 108, 12),
    ("dummy_data_param", "DummyDataParameter", 109, 26),
    ("eltwise_param", "EltwiseParameter", 110, 24),
    ("elu_param", "ELUParameter", 140, 0),
    ("flatten_param", "FlattenParameter", 135, 0),
    ("hdf5_data_param", "HDF5DataParameter", 112, 13),
    ("image_data_param", "ImageDataParameter", 115, 15),
    ("inner_product_param", "InnerProductParameter", 117, 17),
    ("input_param", "InputParameter", 143, 0),
    ("lrn_param", "LRNParameter", 118, 18),
    ("memory_data_param", "MemoryDataParameter", 119, 22),
    ("pooling_param", "PoolingParameter", 121, 19),
    ("prelu_param", "PReLUParameter", 131, 0),
    ("python_param", "PythonParameter", 130, 0),
    ("relu_param", "ReLUParameter", 123, 30),
    ("scale_param", "ScaleParameter", 142, 0),
    ("sigmoid_param", "SigmoidParameter", 124, 38),
    ("softmax_param", "SoftmaxParameter", 125, 39),
    ("tanh_param", "TanHParameter", 127, 37),
];

const MESSAGES: &[Message] = &[
    Message { name: "BlobShape", fields: &[rep("dim", 1, I64)], enums: &[] },
    Message {
        name: "BlobProto",
        fields: &[
            opt("shape", 7, M("BlobShape")),
            rep("data", 5, F32),
            rep("diff", 6, F32),
            rep("double_data", 8, F64),
            rep("double_diff", 9, F64),
            def("num", 1, I32, "0"),
            def("channels", 2, I32, "0"),
            def("height", 3, I32, "0"),
            def("width", 4, I32, "0"),
        ],
        enums: &[],
    },
    Message {
        name: "FillerParameter",
        fields: &[
            def("type", 1, Str, "constant"),
            def("value", 2, F32, "0"),
            def("min", 3, F32, "0"),
            def("max", 4, F32, "1"),
            def("mean", 5, F32, "0"),
            def("std", 6, F32, "1"),
            def("sparse", 7, I32, "-1"),
            def("variance_norm", 8, E("FillerParameter.VarianceNorm"), "FAN_IN"),
        ],
        enums: &[Enum {
            name: "VarianceNorm",
            values: &[("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)],
        }],
    },
    Message {
        name: "NetParameter",
        fields: &[
            opt("name", 1, Str),
            rep("input", 3, Str),
            rep("input_shape", 8, M("BlobShape")),
            rep("input_dim", 4, I32),
            def("force_backward", 5, Bool, "false"),
            opt("state", 6, M("NetState")),
            def("debug_info", 7, Bool, "false"),
            rep("layer", 100, M("LayerParameter")),
            rep("layers", 2, M("V1LayerParameter")),
        ],
        enums: &[],
    },
    Message {
        name: "NetState",
        fields: &[
            def("phase", 1, E("Phase"), "TEST"),
            def("level", 2, I32, "0"),
            rep("stage", 3, Str),
        ],
        enums: &[],
    },
    Message {
        name: "NetStateRule",
        fields: &[
            opt("phase", 1, E("Phase")),
            opt("min_level", 2, I32),
            opt("max_level", 3, I32),
            rep("stage", 4, Str),
            rep("not_stage", 5, Str),
        ],
        enums: &[],
    },
    Message {
        name: "ParamSpec",
        fields: &[
            opt("name", 1, Str),
            opt("share_mode", 2, E("ParamSpec.DimCheckMode")),
            def("lr_mult", 3, F32, "1"),
            def("decay_mult", 4, F32, "1"),
        ],
        enums: &[Enum { name: "DimCheckMode", values: &[("STRICT", 0), ("PERMISSIVE", 1)] }],
    },
    Message {
        name: "TransformationParameter",
        fields: &[
            def("scale", 1, F32, "1"),
            def("mirror", 2, Bool, "false"),
            def("crop_size", 3, U32, "0"),
            opt("mean_file", 4, Str),
            rep("mean_value", 5, F32),
            def("force_color", 6, Bool, "false"),
            def("force_gray", 7, Bool, "false"),
        ],
        enums: &[],
    },
    Message {
        name: "LossParameter",
        fields: &[
            opt("ignore_label", 1, I32),
            def("normalization", 3, E("LossParameter.NormalizationMode"), "VALID"),
            opt("normalize", 2, Bool),
        ],
        enums: &[Enum {
            name: "NormalizationMode",
            values: &[("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)],
        }],
    },
    Message {
        name: "AccuracyParameter",
        fields: &[def("top_k", 1, U32, "1"), def("axis", 2, I32, "1"), opt("ignore_label", 3, I32)],
        enums: &[],
    },
    Message {
        name: "BatchNormParameter",
        fields: &[
            opt("use_global_stats", 1, Bool),
            def("moving_average_fraction", 2, F32, "0.999"),
            def("eps", 3, F32, "1e-5"),
        ],
        enums: &[],
    },
    Message {
        name: "ConcatParameter",
        fields: &[def("axis", 2, I32, "1"), def("concat_dim", 1, U32, "1")],
        enums: &[],
    },
    Message {
        name: "ConvolutionParameter",
        fields: &[
            opt("num_output", 1, U32),
            def("bias_term", 2, Bool, "true"),
            rep("pad", 3, U32),
            rep("kernel_size", 4, U32),
            rep("stride", 6, U32),
            rep("dilation", 18, U32),
            def("pad_h", 9, U32, "0"),
            def("pad_w", 10, U32, "0"),
            opt("kernel_h", 11, U32),
            opt("kernel_w", 12, U32),
            opt("stride_h", 13, U32),
            opt("stride_w", 14, U32),
            def("group", 5, U32, "1"),
            opt("weight_filler", 7, M("FillerParameter")),
            opt("bias_filler", 8, M("FillerParameter")),
            def("engine", 15, E("ConvolutionParameter.Engine"), "DEFAULT"),
            def("axis", 16, I32, "1"),
            def("force_nd_im2col", 17, Bool, "false"),
        ],
        enums: &[ENGINE],
    },
    Message {
        name: "DataParameter",
        fields: &[
            opt("source", 1, Str),
            opt("batch_size", 4, U32),
            def("rand_skip", 7, U32, "0"),
            def("backend", 8, E("DataParameter.DB"), "LEVELDB"),
            def("scale", 2, F32, "1"),
            opt("mean_file", 3, Str),
            def("crop_size", 5, U32, "0"),
            def("mirror", 6, Bool, "false"),
            def("force_encoded_color", 9, Bool, "false"),
            def("prefetch", 10, U32, "4"),
        ],
        enums: &[Enum { name: "DB", values: &[("LEVELDB", 0), ("LMDB", 1)] }],
    },
    Message {
        name: "DropoutParameter",
        fields: &[def("dropout_ratio", 1, F32, "0.5")],
        enums: &[],
    },
    Message {
        name: "DummyDataParameter",
        fields: &[
            rep("data_filler", 1, M("FillerParameter")),
            rep("shape", 6, M("BlobShape")),
            rep("num", 2, U32),
            rep("channels", 3, U32),
            rep("height", 4, U32),
            rep("width", 5, U32),
        ],
        enums: &[],
    },
    Message {
        name: "EltwiseParameter",
        fields: &[
            def("operation", 1, E("EltwiseParameter.EltwiseOp"), "SUM"),
            rep("coeff", 2, F32),
            def("stable_prod_grad", 3, Bool, "true"),
        ],
        enums: &[Enum { name: "EltwiseOp", values: &[("PROD", 0), ("SUM", 1), ("MAX", 2)] }],
    },
    Message { name: "ELUParameter", fields: &[def("alpha", 1, F32, "1")], enums: &[] },
    Message {
        name: "FlattenParameter",
        fields: &[def("axis", 1, I32, "1"), def("end_axis", 2, I32, "-1")],
        enums: &[],
    },
    Message {
        name: "HDF5DataParameter",
        fields: &[
            opt("source", 1, Str),
            opt("batch_size", 2, U32),
            def("shuffle", 3, Bool, "false"),
        ],
        enums: &[],
    },
    Message {
        name: "ImageDataParameter",
        fields: &[
            opt("source", 1, Str),
            def("batch_size", 4, U32, "1"),
            def("rand_skip", 7, U32, "0"),
            def("shuffle", 8, Bool, "false"),
            def("new_height", 9, U32, "0"),
            def("new_width", 10, U32, "0"),
            def("is_color", 11, Bool, "true"),
            def("scale", 2, F32, "1"),
            opt("mean_file", 3, Str),
            def("crop_size", 5, U32, "0"),
            def("mirror", 6, Bool, "false"),
            def("root_folder", 12, Str, ""),
        ],
        enums: &[],
    },
    Message {
        name: "InnerProductParameter",
        fields: &[
            opt("num_output", 1, U32),
            def("bias_term", 2, Bool, "true"),
            opt("weight_filler", 3, M("FillerParameter")),
            opt("bias_filler", 4, M("FillerParameter")),
            def("axis", 5, I32, "1"),
            def("transpose", 6, Bool, "false"),
        ],
        enums: &[],
    },
    Message { name: "InputParameter", fields: &[rep("shape", 1, M("BlobShape"))], enums: &[] },
    Message {
        name: "LRNParameter",
        fields: &[
            def("local_size", 1, U32, "5"),
            def("alpha", 2, F32, "1"),
            def("beta", 3, F32, "0.75"),
            def("norm_region", 4, E("LRNParameter.NormRegion"), "ACROSS_CHANNELS"),
            def("k", 5, F32, "1"),
            def("engine", 6, E("LRNParameter.Engine"), "DEFAULT"),
        ],
        enums: &[
            Enum { name: "NormRegion", values: &[("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)] },
            ENGINE,
        ],
    },
    Message {
        name: "MemoryDataParameter",
        fields: &[
            opt("batch_size", 1, U32),
            opt("channels", 2, U32),
            opt("height", 3, U32),
            opt("width", 4, U32),
        ],
        enums: &[],
    },
    Message {
        name: "PoolingParameter",
        fields: &[
            def("pool", 1, E("PoolingParameter.PoolMethod"), "MAX"),
            def("pad", 4, U32, "0"),
            def("pad_h", 9, U32, "0"),
            def("pad_w", 10, U32, "0"),
            opt("kernel_size", 2, U32),
            opt("kernel_h", 5, U32),
            opt("kernel_w", 6, U32),
            def("stride", 3, U32, "1"),
            opt("stride_h", 7, U32),
            opt("stride_w", 8, U32),
            def("engine", 11, E("PoolingParameter.Engine"), "DEFAULT"),
            def("global_pooling", 12, Bool, "false"),
            def("round_mode", 13, E("PoolingParameter.RoundMode"), "CEIL"),
        ],
        enums: &[
            Enum { name: "PoolMethod", values: &[("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)] },
            ENGINE,
            Enum { name: "RoundMode", values: &[("CEIL", 0), ("FLOOR", 1)] },
        ],
    },
    Message {
        name: "PReLUParameter",
        fields: &[opt("filler", 1, M("FillerParameter")), def("channel_shared", 2, Bool, "false")],
        enums: &[],
    },
    Message {
        name: "PythonParameter",
        fields: &[
            opt("module", 1, Str),
            opt("layer", 2, Str),
            def("param_str", 3, Str, ""),
            def("share_in_parallel", 4, Bool, "false"),
        ],
        enums: &[],
    },
    Message {
        name: "ReLUParameter",
        fields: &[
            def("negative_slope", 1, F32, "0"),
            def("engine", 2, E("ReLUParameter.Engine"), "DEFAULT"),
        ],
        enums: &[ENGINE],
    },
    Message {
        name: "ScaleParameter",
        fields: &[
            def("axis", 1, I32, "1"),
            def("num_axes", 2, I32, "1"),
            opt("filler", 3, M("FillerParameter")),
            def("bias_term", 4, Bool, "false"),
            opt("bias_filler", 5, M("FillerParameter")),
        ],
        enums: &[],
    },
    Message {
        name: "SigmoidParameter",
        fields: &[def("engine", 1, E("SigmoidParameter.Engine"), "DEFAULT")],
        enums: &[ENGINE],
    },
    Message {
        name: "SoftmaxParameter",
        fields: &[
            def("engine", 1, E("SoftmaxParameter.Engine"), "DEFAULT"),
            def("axis", 2, I32, "1"),
        ],
        enums: &[ENGINE],
    },
    Message {
        name: "TanHParameter",
        fields: &[def("engine", 1, E("TanHParameter.Engine"), "DEFAULT")],
        enums: &[ENGINE],
    },
];

/// `LayerParameter`'s own fields, before its parameter messages.
const LAYER_FIELDS: &[Field] = &[
    opt("name", 1, Str),
    opt("type", 2, Str),
    rep("bottom", 3, Str),
    rep("top", 4, Str),
    opt("phase", 10, E("Phase")),
    rep("loss_weight", 5, F32),
    rep("param", 6, M("ParamSpec")),
    rep("blobs", 7, M("BlobProto")),
    rep("propagate_down", 11, Bool),
    rep("include", 8, M("NetStateRule")),
    rep("exclude", 9, M("NetStateRule")),
];

/// `V1LayerParameter`'s own fields, before its parameter messages.
const V1_LAYER_FIELDS: &[Field] = &[
    rep("bottom", 2, Str),
    rep("top", 3, Str),
    opt("name", 4, Str),
    rep("include", 32, M("NetStateRule")),
    rep("exclude", 33, M("NetStateRule")),
    opt("type", 5, E("V1LayerParameter.LayerType")),
    rep("blobs", 6, M("BlobProto")),
    rep("param", 1001, Str),
    rep("blob_share_mode", 1002, E("V1LayerParameter.DimCheckMode")),
    rep("blobs_lr", 7, F32),
    rep("weight_decay", 8, F32),
    rep("loss_weight", 35, F32),
];

fn field_proto(f: &Field) -> FieldDescriptorProto {
    let mut p = FieldDescriptorProto::new();
    p.set_name(f.name.to_string());
    p.set_number(f.number);
    p.set_label(if f.repeated { Label::LABEL_REPEATED } else { Label::LABEL_OPTIONAL });
    let (ty, type_name) = match f.ty {
        I32 => (Type::TYPE_INT32, None),
        U32 => (Type::TYPE_UINT32, None),
        I64 => (Type::TYPE_INT64, None),
        F32 => (Type::TYPE_FLOAT, None),
        F64 => (Type::TYPE_DOUBLE, None),
        Bool => (Type::TYPE_BOOL, None),
        Str => (Type::TYPE_STRING, None),
        M(name) => (Type::TYPE_MESSAGE, Some(name)),
        E(name) => (Type::TYPE_ENUM, Some(name)),
    };
    p.set_type(ty);
    if let Some(name) = type_name {
        p.set_type_name(format!(".caffe.{name}"));
    }
    if let Some(d) = f.default {
        p.set_default_value(d.to_string());
    }
    p
}

fn enum_proto(e: &Enum) -> EnumDescriptorProto {
    let mut p = EnumDescriptorProto::new();
    p.set_name(e.name.to_string());
    for &(name, number) in e.values {
        let mut v = EnumValueDescriptorProto::new();
        v.set_name(name.to_string());
        v.set_number(number);
        p.value.push(v);
    }
    p
}

fn message_proto(name: &str, fields: &[Field], enums: &[Enum]) -> DescriptorProto {
    let mut p = DescriptorProto::new();
    p.set_name(name.to_string());
    p.field = fields.iter().map(field_proto).collect();
    p.enum_type = enums.iter().map(enum_proto).collect();
    p
}

/// The two layer messages: their own fields, then their parameters.
fn layer_protos() -> [DescriptorProto; 2] {
    let params = |v1: bool| {
        LAYER_PARAMS.iter().filter_map(move |&(name, message, number, v1_number)| {
            let number = if v1 { v1_number } else { number };
            (number != 0).then_some(Field {
                name,
                number,
                ty: M(message),
                repeated: false,
                default: None,
            })
        })
    };
    let layer: Vec<Field> = LAYER_FIELDS.iter().copied().chain(params(false)).collect();
    let v1: Vec<Field> = V1_LAYER_FIELDS.iter().copied().chain(params(true)).collect();
    let v1_enums = [
        Enum { name: "LayerType", values: V1_LAYER_TYPES },
        Enum { name: "DimCheckMode", values: &[("STRICT", 0), ("PERMISSIVE", 1)] },
    ];
    [
        message_proto("LayerParameter", &layer, &[]),
        message_proto("V1LayerParameter", &v1, &v1_enums),
    ]
}

fn file_proto() -> FileDescriptorProto {
    let mut file = FileDescriptorProto::new();
    file.set_name("caffe.proto".to_string());
    file.set_package("caffe".to_string());
    file.set_syntax("proto2".to_string());
    file.message_type = MESSAGES.iter().map(|m| message_proto(m.name, m.fields, m.enums)).collect();
    file.message_type.extend(layer_protos());
    file.enum_type.push(enum_proto(&Enum { name: "Phase", values: &[("TRAIN", 0), ("TEST", 1)] }));
    file
}

/// The descriptor of `caffe.NetParameter`, the message of both files.
pub(crate) fn net_parameter() -> MessageDescriptor {
    static FILE: OnceLock<FileDescriptor> = OnceLock::new();
    FILE.get_or_init(|| {
        FileDescriptor::new_dynamic(file_proto(), &[]).expect("the Caffe schema is well formed")
    })
    .message_by_package_relative_name("NetParameter")
    .expect("NetParameter is in the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_builds_and_keeps_caffe_defaults() {
        let net = net_parameter();
        let layer = net.field_by_name("layer").expect("layer");
        assert_eq!(layer.number(), 100);
        let pooling = net
            .file_descriptor()
            .message_by_package_relative_name("PoolingParameter")
            .expect("pooling");
        let stride = pooling.field_by_name("stride").expect("stride");
        let instance = pooling.new_instance();
        assert_eq!(stride.get_singular_field_or_default(&*instance).to_u32(), Some(1));
    }

    #[test]
    fn every_v1_type_has_a_current_name_but_none() {
        for &(v1, _) in V1_LAYER_TYPES {
            assert_eq!(v1_type_name(v1).is_some(), v1 != "NONE", "{v1}");
        }
    }
}
