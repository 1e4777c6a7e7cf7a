//! The `tailhook` binary: a thin shell over the library's command line.
#![forbid(unsafe_code)]

// About a fifth of the sidecar's CPU went to glibc's malloc under load:
// mimalloc, counting each thread's bytes for the transforms' memory cap.
#[global_allocator]
static ALLOCATOR: alloc_meter::Meter = alloc_meter::Meter;

fn main() -> std::process::ExitCode {
    tailhook::commands::main()
}
