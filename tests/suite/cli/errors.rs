//! Bad input fails with an error that names the file, line and field.

use super::{bin, fixtures, run};
use crate::common;

/// Runs featurize on the tiny Llama fixture with `data`, expecting a failure naming `needle`.
fn expect_error(args: &[&str], needles: &[&str]) {
    let out = run(bin().args(args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "error for {args:?} does not mention `{n}`: {stderr}");
    }
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let dir_tmp = common::tmp("test", "bad");
    let dir = dir_tmp.path();
    let model = fixtures().join("tiny-llama");
    let m = model.to_str().unwrap();
    let store = dir.join("store");
    let s = store.to_str().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = r#"{"prompt":"Add 1 and 2.","completion":" 3"}"#;
    let malformed = write("malformed.jsonl", &format!("{good}\n{{\"prompt\": \"x\", \n"));
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &malformed, "--out", s],
        &["malformed.jsonl:2", "invalid JSON"],
    );
    let missing = write("missing.jsonl", &format!("{good}\n{good}\n{{\"prompt\":\"x\"}}\n"));
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &missing, "--out", s],
        &["missing.jsonl:3", "completion"],
    );
    let empty = write("empty.jsonl", "{\"prompt\":\"x\",\"completion\":\"\"}\n");
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &empty, "--out", s],
        &["empty.jsonl:1", "empty"],
    );

    let data = write("good.jsonl", &format!("{good}\n"));
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &data, "--loss", "dpo", "--out", s],
        &["good.jsonl:1", "dpo loss needs preference"],
    );
    // A DPO reference policy where no DPO loss is computed is refused, not ignored.
    let sft = fixtures().join("tiny-llama/adapter");
    expect_error(
        &[
            "featurize",
            "--device",
            "cpu",
            "--model",
            m,
            "--data",
            &data,
            "--out",
            s,
            "--dpo-reference",
            sft.to_str().unwrap(),
        ],
        &["tiny-llama/adapter", "the sft loss has no reference policy", "leave out --dpo-reference"],
    );
    // A model directory without its weights.
    let no_weights = dir.join("no-weights");
    std::fs::create_dir_all(&no_weights).unwrap();
    std::fs::copy(model.join("config.json"), no_weights.join("config.json")).unwrap();
    expect_error(
        &["featurize", "--device", "cpu", "--model", no_weights.to_str().unwrap(), "--data", &data, "--out", s],
        &["no-weights", "model.safetensors"],
    );
    // An unknown architecture.
    let unknown = dir.join("unknown");
    std::fs::create_dir_all(&unknown).unwrap();
    let cfg = std::fs::read_to_string(model.join("config.json")).unwrap().replace("\"llama\"", "\"mamba\"");
    std::fs::write(unknown.join("config.json"), cfg).unwrap();
    expect_error(
        &["featurize", "--device", "cpu", "--model", unknown.to_str().unwrap(), "--data", &data, "--out", s],
        &["unknown/config.json", "mamba"],
    );
    // An adapter made for another model: the GPT-2 adapter on the Llama model.
    let other = fixtures().join("tiny-qwen2/adapter");
    let mut adapter = dir.join("adapter");
    std::fs::create_dir_all(&adapter).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(other.join(f), adapter.join(f)).unwrap();
    }
    // Same module names (q_proj, v_proj), but make one shape wrong by using the llama's r=4
    // with a config that claims r=8.
    let cfg = std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap().replace("\"r\": 4", "\"r\": 8");
    std::fs::write(adapter.join("adapter_config.json"), cfg).unwrap();
    expect_error(
        &[
            "featurize",
            "--device",
            "cpu",
            "--model",
            m,
            "--adapter",
            adapter.to_str().unwrap(),
            "--data",
            &data,
            "--out",
            s,
        ],
        &["adapter_model.safetensors", "lora_A.weight", "shape"],
    );
    adapter = fixtures().join("tiny-gpt2/adapter");
    expect_error(
        &[
            "featurize",
            "--device",
            "cpu",
            "--model",
            m,
            "--adapter",
            adapter.to_str().unwrap(),
            "--data",
            &data,
            "--out",
            s,
        ],
        &["tiny-gpt2/adapter/adapter_config.json", "match no module of the model"],
    );
    // A target of the wrong kind of records: the file, what needs what, and the flag to fix.
    let out = dir.join("select");
    let o = out.to_str().unwrap();
    expect_error(
        &[
            "select", "--device", "cpu", "--model", m, "--method", "rose", "--pool", &data, "--target", &data, "--out",
            o,
        ],
        &["good.jsonl: the rose method's target needs preference", "hint: give --target preference records"],
    );
    // An option's value the library refuses: the message, and the flag that sets it.
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &data, "--batch-size", "0", "--out", s],
        &["the batch size must be positive", "hint: change --batch-size"],
    );
    expect_error(
        &["make-data", "--shots", "0", "--out", dir.join("suite").to_str().unwrap()],
        &["make-data: the target examples per task must be positive", "hint: change --shots"],
    );
    expect_error(
        &["make-data", "--shots", "400", "--out", dir.join("suite").to_str().unwrap()],
        &["would leave the pool less than half", "hint: change --shots, --test or --val-shots (to lower values)"],
    );
    // A shard that is not one of N.
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &data, "--shard", "4/4", "--out", s],
        &["shard `4/4`: expected I/N", "hint: --shard takes I/N"],
    );
}
