//! Every optimizer, once. Names, config keys, `--help`, the GPU dispatch, checkpoints and
//! the test loops all read this list; adding an optimizer is two lines here, its module in
//! the `use` and its entry in [`ALL`] (see docs/optimizers.md, "Adding an optimizer").

use super::{adam, grprop, lbfgs, quickprop, rmsprop, rprop, sgd, Variant};

pub const ALL: &[Variant] = &[
    Variant(&rprop::RPROP_MINUS),
    Variant(&rprop::RPROP_PLUS),
    Variant(&rprop::IRPROP_PLUS),
    Variant(&rprop::IRPROP_MINUS),
    Variant(&sgd::SGD),
    Variant(&rmsprop::RMSPROP),
    Variant(&adam::ADAM),
    Variant(&quickprop::QUICKPROP),
    Variant(&grprop::GRPROP_SLR),
    Variant(&grprop::GRPROP_SAG),
    Variant(&lbfgs::LBFGS),
];
