//! The `hookgate` binary: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

// mimalloc: the request path allocates many small objects across threads, where glibc's
// allocator measurably costs more (see the ingest benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookgate::cli::main()
}
