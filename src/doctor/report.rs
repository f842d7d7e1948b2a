//! The doctor's report as Markdown: one table of devices and checks, then each adapter's facts.

use super::{DoctorReport, ShapeBatch};

/// report.md (also printed on the terminal).
pub fn markdown(r: &DoctorReport) -> String {
    let mut s = format!(
        "# gradsift doctor\n\ngradsift {} on {} ({}), seed {}{}{}: {}\n\n",
        r.gradsift,
        r.os,
        r.arch,
        r.seed,
        if r.quick { ", quick" } else { "" },
        if r.only.is_empty() { String::new() } else { format!(", only {}", r.only.join(", ")) },
        if r.passed { "every check passed" } else { "SOME CHECKS FAILED" }
    );
    s.push_str("| device | check | error | tolerance | result | detail |\n|---|---|---|---|---|---|\n");
    for d in &r.devices {
        if let Some(e) = &d.error {
            s.push_str(&format!("| {} | (device) | – | – | FAIL | {} |\n", d.device, e.replace('|', "/")));
        }
        if let Some(u) = &d.unchecked {
            s.push_str(&format!("| {} | (not checked) | – | – | – | {} |\n", d.device, u.replace('|', "/")));
        }
        for c in &d.checks {
            s.push_str(&format!(
                "| {} | {} | {:.2e} | {:.0e} | {} | {} |\n",
                d.device,
                c.name,
                c.error,
                c.tolerance,
                if c.passed { "pass" } else { "FAIL" },
                c.detail.replace('|', "/")
            ));
        }
    }
    s.push_str("\n| device | featurization (examples/s) | matmul (GFLOP/s, f32 512³) |\n|---|---|---|\n");
    for d in &r.devices {
        match &d.throughput {
            Some(t) => {
                s.push_str(&format!("| {} | {:.1} | {:.1} |\n", d.device, t.examples_per_second, t.matmul_gflops))
            }
            None => s.push_str(&format!("| {} | – | – |\n", d.device)),
        }
    }
    for d in &r.devices {
        if let Some(f) = &d.facts {
            s.push_str(&format!(
                "\n## {}\n\nAPI {}, type {}, vendor 0x{:04x}, driver `{}`. Max buffer {} B, max storage binding {} B, \
                 workgroup x ≤ {}, ≤ {} invocations per workgroup, subgroups {}–{}, shader f16: {}. Our kernels fit: {}{}\n",
                f.name,
                f.api,
                f.device_type,
                f.vendor,
                f.driver,
                f.max_buffer_size,
                f.max_storage_binding,
                f.max_workgroup_size_x,
                f.max_invocations_per_workgroup,
                f.subgroup_sizes.0,
                f.subgroup_sizes.1,
                f.shader_f16,
                if f.kernels_fit { "yes" } else { "no" },
                if f.limit_notes.is_empty() { String::new() } else { format!(" ({})", f.limit_notes.join("; ")) }
            ));
            batches(&mut s, &f.batches);
        }
    }
    s
}

/// The largest batch of each real model's shape within the binding limit, a row per shape.
fn batches(s: &mut String, batches: &[ShapeBatch]) {
    if batches.is_empty() {
        return;
    }
    s.push_str(
        "\nLargest batch within the storage-binding limit (weights past it are kept in parts; whether they fit \
         the device's memory is not reported by wgpu):\n\n| shape | tokens | sequences per batch |\n|---|---|---|\n",
    );
    for b in batches {
        let cell = match &b.refused {
            Some(why) => format!("refused: {why}"),
            None => b.batch.to_string(),
        };
        s.push_str(&format!("| {} | {} | {cell} |\n", b.shape, b.tokens));
    }
}
