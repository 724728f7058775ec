//! Embeds the built-in rule pack (`config/rules/**/*.yml`) and the test
//! files beside its rules, so the binary needs no files at run time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let rules = root.join("config/rules");
    println!("cargo:rerun-if-changed=config/rules");
    let mut files = Vec::new();
    collect(&rules, &mut files);
    files.sort();
    let mut out = String::from(
        "/// The built-in rule pack, embedded at build time.\npub static FILES: &[BuiltinFile] = &[\n",
    );
    for file in &files {
        let rel = file.strip_prefix(&rules).expect("under config/rules");
        let tests = test_file(file);
        let _ = writeln!(
            out,
            "    BuiltinFile {{ path: {:?}, text: include_str!({:?}), tests: {} }},",
            rel.to_string_lossy().replace('\\', "/"),
            file.display().to_string(),
            match tests {
                Some(t) => format!("Some(include_str!({:?}))", t.display().to_string()),
                None => "None".to_owned(),
            }
        );
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("builtin_rules.rs");
    std::fs::write(dest, out).expect("write builtin_rules.rs");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if is_rule_file(&path) {
            out.push(path);
        }
    }
}

fn is_rule_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    (name.ends_with(".yml") || name.ends_with(".yaml"))
        && !name.ends_with(".tests.yml")
        && !name.ends_with(".tests.yaml")
}

fn test_file(rule: &Path) -> Option<PathBuf> {
    let name = rule.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".yml")
        .or_else(|| name.strip_suffix(".yaml"))?;
    let candidate = rule.with_file_name(format!("{stem}.tests.yml"));
    candidate.exists().then_some(candidate)
}
