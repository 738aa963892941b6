fn main() {
    std::process::exit(osbuild_rs::cli::main(std::env::args_os().collect()));
}
