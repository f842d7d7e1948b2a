//! Chat records against PyTorch's references (tests/fixtures/hf-arch, copied from the shared
//! fixtures): each model's chat template renders the conversations, and the ids and loss masks
//! equal the ones transformers made (manifest.json states the convention). ShareGPT and Alpaca
//! records give the ids and masks of their `messages` twins; chat preference pairs give the
//! reference DPO sequences; bad chat input gets an error naming the file, line and field.

use std::path::{Path, PathBuf};

use gradsift::data::{load_records, ChatTemplate, Sequence, TextTokenizer, Tokenized};
use serde_json::Value;

use crate::common;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-arch")
}

fn tokenizer(model: &str) -> TextTokenizer {
    let d = dir().join(model);
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
    let eos = cfg["eos_token_id"].as_u64().unwrap() as u32;
    TextTokenizer::from_file(&d.join("tokenizer.json"), eos)
        .unwrap()
        .with_template(ChatTemplate::from_model_dir(&d).unwrap())
}

fn reference(model: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join(model).join("reference.json")).unwrap()).unwrap()
}

fn seq(ids: &Value, mask: &Value) -> Sequence {
    let v = |x: &Value| x.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect::<Vec<_>>();
    Sequence {
        ids: v(ids).into_iter().map(|x| x as u32).collect(),
        mask: v(mask).into_iter().map(|x| x as u8).collect(),
    }
}

fn singles(t: Vec<Tokenized>) -> Vec<Sequence> {
    t.into_iter()
        .map(|x| match x {
            Tokenized::Single(s) => s,
            Tokenized::Pair(_) => panic!("a pair"),
        })
        .collect()
}

/// The conversations file of a model (Gemma's template refuses a system role).
fn conversations(model: &str) -> &'static str {
    if model == "tiny-gemma2" {
        "chat-nosystem.jsonl"
    } else {
        "chat.jsonl"
    }
}

/// `tok`'s chat records and chat preference pairs equal `model`'s transformers references.
fn assert_chat_matches(model: &str, tok: &TextTokenizer, what: &str) {
    let r = reference(model);
    let want: Vec<Sequence> = r["sft"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "chat")
        .map(|e| seq(&e["ids"], &e["mask"]))
        .collect();
    let data = load_records(&dir().join(conversations(model))).unwrap();
    let (got, _) = tok.examples(&data.examples, 4096).unwrap();
    assert_eq!(singles(got), want, "{model} ({what}): chat ids/masks");
    let pairs = load_records(&dir().join("chat-pairs.jsonl")).unwrap();
    let (got, _) = tok.examples(&pairs.examples, 4096).unwrap();
    let want: Vec<(Sequence, Sequence)> = r["dpo"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "chat")
        .map(|e| (seq(&e["chosen_ids"], &e["chosen_mask"]), seq(&e["rejected_ids"], &e["rejected_mask"])))
        .collect();
    let got: Vec<(Sequence, Sequence)> = got
        .into_iter()
        .map(|t| match t {
            Tokenized::Pair(p) => (p.chosen, p.rejected),
            Tokenized::Single(_) => panic!("not a pair"),
        })
        .collect();
    assert_eq!(got, want, "{model} ({what}): chat preference pairs");
}

/// `model`'s chat records and pairs, rendered by its chat_template.jinja, tokenized as
/// transformers does.
fn chat_ids_and_masks(model: &str) {
    assert_chat_matches(model, &tokenizer(model), "chat_template.jinja");
}

/// Hub repos of Llama-3.x, Qwen2.5, Mistral, Phi-3 and Gemma-2 keep the template in
/// tokenizer_config.json: the same template from there gives the same ids and masks.
fn template_in_tokenizer_config(model: &str) {
    let from = dir().join(model);
    let d_tmp = common::tmp("config-template", model);
    let d = d_tmp.path();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(from.join("tokenizer_config.json")).unwrap()).unwrap();
    let source = std::fs::read_to_string(from.join("chat_template.jinja")).unwrap();
    config["chat_template"] = Value::String(source);
    std::fs::write(d.join("tokenizer_config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    std::fs::copy(from.join("tokenizer.json"), d.join("tokenizer.json")).unwrap();
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(from.join("config.json")).unwrap()).unwrap();
    let eos = cfg["eos_token_id"].as_u64().unwrap() as u32;
    let template = ChatTemplate::from_model_dir(d).unwrap().expect("a template in tokenizer_config.json");
    let tok = TextTokenizer::from_file(&d.join("tokenizer.json"), eos).unwrap().with_template(Some(template));
    assert_chat_matches(model, &tok, "tokenizer_config.json");
}

/// ShareGPT and Alpaca records give the ids and masks of their `messages` twins.
fn sharegpt_and_alpaca(model: &str) {
    let tok = tokenizer(model);
    let tokens =
        |file: &str| singles(tok.examples(&load_records(&dir().join(file)).unwrap().examples, 4096).unwrap().0);
    let twins = tokens("chat.jsonl");
    assert_eq!(tokens("sharegpt.jsonl"), twins, "{model}: ShareGPT");
    // Alpaca holds the single-turn conversations of chat.jsonl, in order.
    let chat = load_records(&dir().join("chat.jsonl")).unwrap();
    let single_turn: Vec<Sequence> = chat
        .examples
        .iter()
        .zip(&twins)
        .filter(|(e, _)| e.raw.matches("\"assistant\"").count() == 1)
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(tokens("alpaca.jsonl"), single_turn, "{model}: Alpaca");
}

/// One module per checkpoint with a test per check it runs (`chat::CHECKPOINT::CHECK`), so a
/// failure names the model. A checkpoint runs every check unless its row lists the ones it runs.
macro_rules! per_checkpoint {
    (@module $model:ident $name:literal [$($check:ident)+]) => {
        mod $model {
            $(
                #[test]
                fn $check() {
                    super::$check($name)
                }
            )+
        }
    };
    (@module $model:ident $name:literal) => {
        per_checkpoint!(@module $model $name [chat_ids_and_masks template_in_tokenizer_config sharegpt_and_alpaca]);
    };
    ($($model:ident $name:literal $([$($check:ident)+])?;)+) => {
        /// The checkpoints these tests run on.
        const CHECKPOINTS: &[&str] = &[$($name),+];

        $(per_checkpoint!(@module $model $name $([$($check)+])?);)+
    };
}

// Gemma-2's template refuses chat.jsonl's system messages (the error test below), so it has no
// ShareGPT/Alpaca twins to compare.
per_checkpoint! {
    tiny_mistral "tiny-mistral";
    tiny_llama3 "tiny-llama3";
    tiny_qwen3 "tiny-qwen3";
    tiny_phi3 "tiny-phi3";
    tiny_gemma2 "tiny-gemma2" [chat_ids_and_masks template_in_tokenizer_config];
    tiny_gemma "tiny-gemma";
    tiny_gemma3 "tiny-gemma3";
    tiny_qwen2_window "tiny-qwen2-window";
    tiny_phi4 "tiny-phi4";
    tiny_qwen3_yarn "tiny-qwen3-yarn";
    tiny_smollm3 "tiny-smollm3";
    tiny_olmo2 "tiny-olmo2";
    tiny_olmo3 "tiny-olmo3";
    tiny_neox "tiny-neox";
    tiny_granite "tiny-granite";
    tiny_phi2 "tiny-phi2";
    tiny_gpt2_scaled "tiny-gpt2-scaled";
}

/// Every hf-arch checkpoint has its chat tests: one added to the fixtures (`HF_ARCH`) and not
/// to the list above fails here.
#[test]
fn every_chat_checkpoint_has_its_tests() {
    assert_eq!(CHECKPOINTS, common::HF_ARCH);
}

#[test]
fn bad_chat_input_names_file_line_and_reason() {
    let tmp_tmp = common::tmp("chat", "chat");
    let tmp = tmp_tmp.path();
    // Gemma's template refuses a system role: its own message, at the record's line.
    let gemma = tokenizer("tiny-gemma2");
    let data = load_records(&dir().join("chat.jsonl")).unwrap();
    let e = gemma.examples(&data.examples, 4096).unwrap_err().to_string();
    assert!(e.contains("chat.jsonl:1") && e.contains("System role not supported"), "{e}");
    // A model without a template.
    let d = dir().join("tiny-llama3");
    let bare = TextTokenizer::from_file(&d.join("tokenizer.json"), 1).unwrap();
    let e = bare.examples(&data.examples, 4096).unwrap_err().to_string();
    assert!(e.contains("chat template"), "{e}");
    // Records: a mixed file, and a template that is not incremental.
    let mixed = tmp.join("mixed.jsonl");
    std::fs::write(
        &mixed,
        "{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"r\"}]}\n",
    )
    .unwrap();
    let e = load_records(&mixed).unwrap_err().to_string();
    assert!(e.contains("mixed.jsonl:2") && e.contains("mixes record kinds"), "{e}");
    let odd = ChatTemplate::new(
        "{% for m in messages|reverse %}{{ m.content }}|{% endfor %}".into(),
        tmp.join("reversed.jinja"),
        String::new(),
        String::new(),
    )
    .unwrap();
    let two_turns = load_records(&dir().join("chat.jsonl")).unwrap();
    let odd_tok = TextTokenizer::from_file(&d.join("tokenizer.json"), 1).unwrap().with_template(Some(odd));
    let e = odd_tok.examples(&two_turns.examples[1..2], 4096).unwrap_err().to_string();
    assert!(e.contains("not incremental") && e.contains(":2"), "{e}");
    // A list of named templates with no default.
    let listed = tmp.join("listed");
    std::fs::create_dir_all(&listed).unwrap();
    std::fs::write(listed.join("tokenizer_config.json"), r#"{"chat_template":[{"name":"tool_use","template":"x"}]}"#)
        .unwrap();
    let e = ChatTemplate::from_model_dir(&listed).err().unwrap().to_string();
    assert!(e.contains("tokenizer_config.json") && e.contains("no `default`"), "{e}");
}
