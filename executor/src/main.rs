mod sandbox;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Inner stage of the sandbox: must run before anything else (no runtime, no threads).
    if let Some(rest) = sandbox::inner_args(&args) {
        sandbox::inner::main(rest);
    }
    if args.get(1).map(|a| a == "sandbox").unwrap_or(false) {
        std::process::exit(sandbox::cli::main(args[2..].to_vec()));
    }
}
