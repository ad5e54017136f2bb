use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = reason::cli::Cli::parse();
    reason::cli::init_logging(cli.verbose);
    match reason::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
