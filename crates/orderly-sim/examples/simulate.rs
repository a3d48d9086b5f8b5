//! `cargo run -p orderly-sim --example simulate -- --policy edf …`: the `orderly simulate`
//! arguments without the server binary; prints the metrics JSON.

use clap::Parser;
use orderly_sim::SimulateArgs;

#[derive(Parser)]
#[command(about = "Replay Norway charging sessions through a policy and print metrics as JSON")]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

fn main() {
    let cli = Cli::parse();
    match orderly_sim::run(&cli.args) {
        Ok(metrics) => match serde_json::to_string_pretty(&metrics) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
