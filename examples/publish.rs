//! Publishing from an application: the event is inserted in the same transaction as the business change.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@localhost:5432/postgres cargo run --example publish
//! ```
//! Needs the schema (`tailhook migrate`); prints the event id, which receivers
//! get as `webhook-id`.

use tokio_postgres::NoTls;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@localhost:5432/postgres".into());
    let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(connection);

    let tx = client.transaction().await?;
    // ... the application's own writes go here, in `tx` ...
    let payload = serde_json::json!({ "invoice": 42, "amount": 1999, "currency": "EUR" });
    let event_id: String = tx
        .query_one(
            "SELECT tailhook.publish($1, $2::text::jsonb, tenant => $3)::text",
            &[&"invoice.paid", &payload.to_string(), &Some("acme")],
        )
        .await?
        .get(0);
    // Rolled back instead, the event would never be sent.
    tx.commit().await?;
    println!("published invoice.paid as {event_id}");
    Ok(())
}
