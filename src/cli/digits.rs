//! `predict` (classify a picture) and `samples` (draw the misclassified test digits).

use anyhow::Result;

use super::{PredictArgs, SamplesArgs};
use crate::checkpoint;
use crate::cpu;
use crate::data::{self, Part, CLASSES};
use crate::digits;

pub(super) fn predict(args: PredictArgs) -> Result<()> {
    let params = checkpoint::load(
        &args.weights,
        (digits::SIDE * digits::SIDE) as usize,
        CLASSES,
    )?;
    let pixels = digits::load_digit(&args.image)?;
    let (digit, probs) = digits::predict(&params, &pixels);
    println!("digit: {digit}");
    for (c, p) in probs.iter().enumerate() {
        println!("  {c}: {p:.4}");
    }
    Ok(())
}

pub(super) fn samples(args: SamplesArgs) -> Result<()> {
    crate::fsio::check_png_out(&args.out)?;
    crate::fsio::check_not_input(&args.out, &[&args.weights])?;
    let set = data::load(&args.data.dir()?, Part::Test)?;
    let params = checkpoint::load(&args.weights, set.features(), CLASSES)?;
    let ev = cpu::evaluate(&params, &set);
    let wrong = digits::misclassified_grid(&args.out, &set, &ev.predictions, args.max)?;
    println!(
        "{wrong} of {} test digits misclassified; drew {} in {}",
        set.len(),
        wrong.min(args.max).min(digits::MAX_GRID),
        args.out.display()
    );
    Ok(())
}
