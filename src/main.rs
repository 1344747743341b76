fn main() {
    println!("lockhub {}", env!("CARGO_PKG_VERSION"));
}
