//! The `cloudwarden` binary; everything lives in the library (see `lib.rs`).

// Detection allocates and frees per event (parsed JSON, alerts); mimalloc
// does that markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cloudwarden::cli::main()
}
