//! Saved views of the case list: each user keeps a few named filter-and-sort combinations
//! (the list's query string, already reduced to known keys by the page) to open in one click.
//! A user only ever reads or deletes their own.

use crate::{Result, Store, StoreError, get_i64, get_str, to_ms};

/// The longest name of a saved view, in characters.
pub const NAME_MAX: usize = 80;
/// The longest query string a saved view keeps, in bytes.
pub const QUERY_MAX: usize = 2000;
/// The most views one user keeps.
pub const VIEWS_MAX: i64 = 50;

/// One saved view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedView {
    /// Database id (what the delete form names).
    pub id: i64,
    /// The name the user gave it.
    pub name: String,
    /// The list's query string (`status=received&sort=due`).
    pub query: String,
}

impl Store {
    /// The views of one user, by name.
    pub async fn saved_views(&self, user_id: i64) -> Result<Vec<SavedView>> {
        let rows =
            sqlx::query("SELECT id, name, query FROM saved_views WHERE user_id = $1 ORDER BY name")
                .bind(user_id)
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(SavedView {
                    id: get_i64(r, "id")?,
                    name: get_str(r, "name")?,
                    query: get_str(r, "query")?,
                })
            })
            .collect()
    }

    /// Saves a view under `name` for the user; the same name again replaces its query.
    pub async fn save_view(&self, user_id: i64, name: &str, query: &str) -> Result<SavedView> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > NAME_MAX {
            return Err(StoreError::invalid(
                "name",
                format!("a name of 1 to {NAME_MAX} characters"),
            ));
        }
        if query.len() > QUERY_MAX {
            return Err(StoreError::invalid(
                "query",
                format!("at most {QUERY_MAX} bytes"),
            ));
        }
        let mut tx = self.write.begin().await?;
        let count = get_i64(
            &sqlx::query("SELECT COUNT(*) AS n FROM saved_views WHERE user_id = $1 AND name <> $2")
                .bind(user_id)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?,
            "n",
        )?;
        if count >= VIEWS_MAX {
            return Err(StoreError::invalid(
                "name",
                format!("at most {VIEWS_MAX} saved views"),
            ));
        }
        let row = sqlx::query(
            "INSERT INTO saved_views (user_id, name, query, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, name) DO UPDATE SET query = excluded.query RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(query)
        .bind(to_ms(self.clock.now()))
        .fetch_one(&mut *tx)
        .await?;
        let id = get_i64(&row, "id")?;
        tx.commit().await?;
        Ok(SavedView {
            id,
            name: name.to_owned(),
            query: query.to_owned(),
        })
    }

    /// Deletes one of the user's views; false when they have no view with that id (another
    /// user's view is not theirs to delete, and is left alone).
    pub async fn delete_view(&self, user_id: i64, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM saved_views WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::with_test_store;
    use sportello_domain::roles::Role;

    #[tokio::test]
    async fn views_belong_to_their_user_and_a_name_is_kept_once() {
        with_test_store(|store, _clock| async move {
            store
                .add_user("anna", "Anna", Role::Operator)
                .await
                .unwrap();
            store
                .add_user("bruno", "Bruno", Role::Operator)
                .await
                .unwrap();
            let anna = store.user_by_login("anna").await.unwrap().unwrap().id;
            let bruno = store.user_by_login("bruno").await.unwrap().unwrap().id;
            let late = store
                .save_view(anna, " In ritardo ", "overdue=true")
                .await
                .unwrap();
            assert_eq!(late.name, "In ritardo");
            store
                .save_view(anna, "Nuove", "status=received")
                .await
                .unwrap();
            let again = store
                .save_view(anna, "In ritardo", "overdue=true&sort=due")
                .await
                .unwrap();
            assert_eq!(again.id, late.id, "the same name replaces the query");
            let views = store.saved_views(anna).await.unwrap();
            assert_eq!(
                views
                    .iter()
                    .map(|v| (v.name.as_str(), v.query.as_str()))
                    .collect::<Vec<_>>(),
                [
                    ("In ritardo", "overdue=true&sort=due"),
                    ("Nuove", "status=received")
                ]
            );
            assert!(store.saved_views(bruno).await.unwrap().is_empty());
            assert!(!store.delete_view(bruno, late.id).await.unwrap(), "not his");
            assert_eq!(store.saved_views(anna).await.unwrap().len(), 2);
            assert!(store.delete_view(anna, late.id).await.unwrap());
            assert_eq!(store.saved_views(anna).await.unwrap().len(), 1);
            assert!(store.save_view(anna, "  ", "q=x").await.is_err());
            assert!(
                store
                    .save_view(anna, "lunga", &"x".repeat(3000))
                    .await
                    .is_err()
            );
        })
        .await;
    }
}
