//! The `tailhook` binary: a thin shell over the library's command line.
#![forbid(unsafe_code)]

// About a fifth of the sidecar's CPU went to glibc's malloc under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tailhook::commands::main()
}
