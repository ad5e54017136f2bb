use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v3), which libmimalloc-sys does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Backbone passes free and re-allocate the same large activation buffers every batch.
    // mimalloc returns freed pages to the OS after 10 ms by default, so each batch paid for the
    // kernel zeroing them again (16-40 % of the time in perf). Keep them for 10 s instead; the
    // environment variable MIMALLOC_PURGE_DELAY still overrides this.
    // SAFETY: sets a plain integer option; mimalloc allows it at any time.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 10_000) };
    let cli = reason::cli::Cli::parse();
    reason::cli::init_logging(cli.verbose);
    match reason::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote file names: never send their control characters raw.
            for line in format!("error: {}", reason::cli::errors::message(&e)).lines() {
                eprintln!("{}", reason::support::text::printable(line));
            }
            std::process::ExitCode::FAILURE
        }
    }
}
