//! [`MeiliIndex`]: the [`SearchIndex`] port on one Meilisearch index.

use emporium_actors::Product;
use emporium_actors::catalog::{SearchError, SearchIndex, SearchPage, SearchQuery};
use meilisearch_sdk::client::Client;
use meilisearch_sdk::errors::ErrorCode;
use meilisearch_sdk::indexes::Index;
use meilisearch_sdk::settings::PrefixSearchSettings;

use crate::config::{MeiliSettings, check_index_name};
use crate::error::MeiliError;
use crate::query::plan;
use crate::schema::{PRIMARY_KEY, documents, index_settings};
use crate::tasks;
use crate::transport::Transport;

/// The catalog's search index in Meilisearch. Cheap to clone: clones share one HTTP
/// client (and its connections).
#[derive(Clone)]
pub struct MeiliIndex {
    client: Client<Transport>,
    uid: String,
}

/// The server and the index, never the API key (the SDK client's own `Debug` shows it).
impl std::fmt::Debug for MeiliIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeiliIndex")
            .field("url", &self.client.get_host())
            .field("index", &self.uid)
            .finish()
    }
}

impl MeiliIndex {
    /// Connect to the server at `url` (`http://…` or `https://…`) and get the index
    /// `index_name` ready: created if missing (with the primary key `id`), its settings
    /// written (see the crate documentation), each step waited for. An existing index keeps its
    /// documents; its settings are overwritten. Safe to run from several nodes at once.
    pub async fn connect(
        url: &str,
        api_key: Option<String>,
        index_name: &str,
    ) -> Result<Self, MeiliError> {
        check_index_name(index_name).map_err(MeiliError::IndexName)?;
        let url = url.trim_end_matches('/');
        let transport = Transport::new(url, api_key.as_deref())?;
        let index = Self {
            client: Client::new_with_client(url, api_key, transport),
            uid: index_name.to_owned(),
        };
        index.create_if_missing().await?;
        index.check_primary_key().await?;
        index.configure().await?;
        Ok(index)
    }

    /// [`MeiliIndex::connect`] with what a `meili://` address says.
    pub async fn from_settings(settings: &MeiliSettings) -> Result<Self, MeiliError> {
        Self::connect(&settings.url, settings.api_key.clone(), &settings.index).await
    }

    /// The index uid.
    pub fn index_name(&self) -> &str {
        &self.uid
    }

    /// Delete the index and its documents, and wait until it is gone. For tests and
    /// tear-down; the node never deletes its index.
    pub async fn delete_index(self) -> Result<(), MeiliError> {
        const DURING: &str = "delete the index";
        let task = self
            .client
            .delete_index(&self.uid)
            .await
            .map_err(MeiliError::request(DURING))?;
        tasks::succeed(&self.client, &task, DURING).await
    }

    fn index(&self) -> Index<Transport> {
        self.client.index(&self.uid)
    }

    /// Create the index; one that already exists (made earlier or by another node) is fine.
    async fn create_if_missing(&self) -> Result<(), MeiliError> {
        const DURING: &str = "create the index";
        let task = self
            .client
            .create_index(&self.uid, Some(PRIMARY_KEY))
            .await
            .map_err(MeiliError::request(DURING))?;
        tasks::succeed_unless(
            &self.client,
            &task,
            DURING,
            Some(ErrorCode::IndexAlreadyExists),
        )
        .await
    }

    /// An existing index made by someone else may have another primary key; documents
    /// would then be refused on every upsert. Say so at once instead.
    async fn check_primary_key(&self) -> Result<(), MeiliError> {
        let index = self
            .client
            .get_index(&self.uid)
            .await
            .map_err(MeiliError::request("read the index"))?;
        match index.primary_key {
            Some(found) if found != PRIMARY_KEY => Err(MeiliError::PrimaryKey {
                index: self.uid.clone(),
                found,
                expected: PRIMARY_KEY,
            }),
            // Without a primary key yet, the first upsert sets it.
            _ => Ok(()),
        }
    }

    /// Write the settings, and turn prefix search off: queries are exact phrases, which
    /// never use the prefix databases, so Meilisearch need not build them.
    async fn configure(&self) -> Result<(), MeiliError> {
        const DURING: &str = "write the index settings";
        let index = self.index();
        let settings = index
            .set_settings(&index_settings())
            .await
            .map_err(MeiliError::request(DURING))?;
        let prefix = index
            .set_prefix_search(PrefixSearchSettings::Disabled)
            .await
            .map_err(MeiliError::request(DURING))?;
        tasks::succeed(&self.client, &settings, DURING).await?;
        tasks::succeed(&self.client, &prefix, DURING).await
    }

    async fn upsert_documents(&self, products: &[Product]) -> Result<(), MeiliError> {
        const DURING: &str = "add documents";
        let documents = documents(products);
        if documents.is_empty() {
            return Ok(());
        }
        let task = self
            .index()
            .add_or_replace(&documents, Some(PRIMARY_KEY))
            .await
            .map_err(MeiliError::request(DURING))?;
        tasks::succeed(&self.client, &task, DURING).await
    }

    async fn run(&self, query: &SearchQuery) -> Result<SearchPage, MeiliError> {
        let Some(plan) = plan(query) else {
            return Ok(SearchPage::default());
        };
        let index = self.index();
        let mut multi = self.client.multi_search();
        for search in plan.searches(&index) {
            multi.with_search_query(search);
        }
        let response = multi
            .execute::<Product>()
            .await
            .map_err(MeiliError::request("search"))?;
        plan.page(response.results)
    }

    async fn count(&self) -> Result<usize, MeiliError> {
        let stats = self
            .index()
            .get_stats()
            .await
            .map_err(MeiliError::request("read the index stats"))?;
        Ok(stats.number_of_documents)
    }
}

#[async_trait::async_trait]
impl SearchIndex for MeiliIndex {
    /// One `add or replace documents` task, waited for: once it succeeded, searches see it.
    async fn upsert_many(&self, products: &[Product]) -> Result<(), SearchError> {
        Ok(self.upsert_documents(products).await?)
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        Ok(self.run(query).await?)
    }

    /// The index's `numberOfDocuments`.
    async fn len(&self) -> Result<usize, SearchError> {
        Ok(self.count().await?)
    }
}
