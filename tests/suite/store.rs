//! The feature store resumes an interrupted job from its last complete chunk, refuses to mix
//! rows made with other arguments, and writes what the manifest promises.

use std::path::{Path, PathBuf};

use crate::common;

use gradsift::device::Compute;
use gradsift::features::{npy, Dtype, FeatureRows, Store};
use gradsift::loss::LossKind;
use gradsift::pipeline::{self, FeatureOptions, Gradients};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny")
}

fn opts(dtype: Dtype, overwrite: bool) -> FeatureOptions {
    FeatureOptions {
        seed: 3,
        proj_dim: 64,
        dtype,
        max_len: 512,
        batch_size: 2,
        chunk_size: 2,
        overwrite,
        ..FeatureOptions::default()
    }
}

#[test]
fn resumes_from_the_last_complete_chunk() {
    let c = Compute::cpu();
    let loaded = common::load_with_adapter("tiny-llama", &c);
    let data = fixtures().join("instruction.jsonl");
    let base_tmp = common::tmp("store", "store");
    let base = base_tmp.path();

    let file = pipeline::featurize(
        &loaded,
        &Gradients::plain(&data, LossKind::Sft),
        &opts(Dtype::F32, false),
        &c,
        &base.join("full"),
        None,
    )
    .unwrap();
    let full = file.load().unwrap();
    assert_eq!((full.rows, full.dim), (6, 64));
    assert_eq!(full.manifest.rows, vec![1, 2, 3, 4, 5, 6]);
    let (on_disk, r, d) = npy::read(&base.join("full/features.npy")).unwrap();
    assert_eq!((r, d), (6, 64));
    assert_eq!(on_disk, full.data);
    // The scorers' streamed blocks are the matrix's rows.
    assert_eq!(file.block(1, 3).unwrap().as_ref(), &full.data[64..4 * 64]);
    assert_eq!(file.block(5, 1).unwrap().as_ref(), &full.data[5 * 64..]);
    assert!(file.read_rows(5, 2).is_err(), "a read past the last row must fail");

    // An interrupted run: chunk 0 finished (with marker values we can recognise), the rest not.
    let partial = Store::new(&base.join("partial"));
    assert_eq!(partial.open_for(&full.manifest.key, false).unwrap(), 0);
    let marker = vec![7.0f32; 2 * 64];
    partial.write_chunk(0, &marker, &[0.5, 0.5], 64, Dtype::F32).unwrap();
    let mut m = full.manifest.clone();
    m.complete = false;
    m.chunks_done = 1;
    partial.write_manifest(&m).unwrap();

    let resumed = pipeline::featurize(
        &loaded,
        &Gradients::plain(&data, LossKind::Sft),
        &opts(Dtype::F32, false),
        &c,
        &base.join("partial"),
        None,
    )
    .unwrap()
    .load()
    .unwrap();
    assert_eq!(&resumed.data[..128], &marker[..], "chunk 0 was recomputed instead of reused");
    assert_eq!(&resumed.data[128..], &full.data[128..], "resumed rows differ from a full run");
    assert!(resumed.manifest.complete);

    // Other arguments into the same store: refused, naming what differs.
    let err = pipeline::featurize(
        &loaded,
        &Gradients::plain(&data, LossKind::Sft),
        &opts(Dtype::F16, false),
        &c,
        &base.join("full"),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("dtype"), "{err}");
    // ...unless asked to overwrite; f16 storage halves the file and stays close.
    let f16 = pipeline::featurize(
        &loaded,
        &Gradients::plain(&data, LossKind::Sft),
        &opts(Dtype::F16, true),
        &c,
        &base.join("full"),
        None,
    )
    .unwrap()
    .load()
    .unwrap();
    let max_diff = f16.data.iter().zip(&full.data).map(|(a, b)| (a - b).abs() / b.abs().max(1e-3)).fold(0f32, f32::max);
    assert!(max_diff < 2e-3, "f16 features differ by {max_diff}");
}

#[test]
fn exact_gradients_store_their_layout() {
    let c = Compute::cpu();
    let loaded = common::load_with_adapter("tiny-gpt2", &c);
    let dir_tmp = common::tmp("store", "layout");
    let dir = dir_tmp.path();
    let mut o = opts(Dtype::F32, false);
    o.proj_dim = 0;
    let f = pipeline::featurize(
        &loaded,
        &Gradients::plain(&fixtures().join("preference.jsonl"), LossKind::Dpo { beta: 0.1 }),
        &o,
        &c,
        dir,
        None,
    )
    .unwrap();
    let layout = &f.manifest.layout;
    assert_eq!(layout.len(), 12, "6 adapted Conv1D modules (attn.c_attn, attn.c_proj, mlp.c_proj per layer) × A, B");
    assert_eq!(layout[0].name, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
    let end = layout.last().map(|s| s.offset + s.shape.iter().product::<usize>()).unwrap();
    assert_eq!(end, f.dim);
}

/// Token-budget batches (examples grouped by length) give the rows of count batches, in input
/// order, within f32 rounding: per-example gradients do not depend on the batch's company.
#[test]
fn token_budget_batches_keep_rows_in_input_order() {
    let c = Compute::cpu();
    let loaded = common::load_with_adapter("tiny-llama", &c);
    let data = fixtures().join("instruction.jsonl");
    let base_tmp = common::tmp("store", "budget");
    let base = base_tmp.path();
    let by_count = FeatureOptions { chunk_size: 6, ..opts(Dtype::F32, false) };
    let by_tokens = FeatureOptions { max_batch_tokens: Some(40), ..by_count.clone() };
    let a =
        pipeline::featurize(&loaded, &Gradients::plain(&data, LossKind::Sft), &by_count, &c, &base.join("count"), None)
            .unwrap()
            .load()
            .unwrap();
    let b = pipeline::featurize(
        &loaded,
        &Gradients::plain(&data, LossKind::Sft),
        &by_tokens,
        &c,
        &base.join("tokens"),
        None,
    )
    .unwrap()
    .load()
    .unwrap();
    assert_eq!(a.manifest.rows, b.manifest.rows);
    let x: Vec<f64> = a.data.iter().map(|&v| v as f64).collect();
    let y: Vec<f64> = b.data.iter().map(|&v| v as f64).collect();
    let err = common::rel_err(&y, &x);
    assert!(err < 1e-5, "rows differ by {err}");
    let (la, lb) =
        (npy::read(&base.join("count/losses.npy")).unwrap().0, npy::read(&base.join("tokens/losses.npy")).unwrap().0);
    assert!(la.iter().zip(&lb).all(|(p, q)| (p - q).abs() < 1e-5), "{la:?} vs {lb:?}");
}
