package fhirsync.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.binary.api.IBinaryStorageSvc;
import ca.uhn.fhir.jpa.binstore.MemoryBinaryStorageSvcImpl;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.narrative2.NullNarrativeGenerator;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import ca.uhn.fhir.validation.IInstanceValidatorModule;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import jakarta.persistence.EntityManagerFactory;
import org.apache.commons.dbcp2.BasicDataSource;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;

import java.util.Properties;
import javax.sql.DataSource;

/**
 * The smallest JPA server HAPI's own configuration classes allow: R4 DAOs and providers, batch2 (HAPI's
 * delete and reindex paths need its coordinator), no subscriptions, no MDM, no Lucene, no narratives.
 * Settings come from system properties (fhirsync.*) so the launcher can vary them per run.
 */
@Configuration
// SubscriptionChannelConfig only brings the in-memory message channels batch2 posts its work on; no
// subscription matcher or delivery is configured.
@Import({
	JpaR4Config.class,
	HapiJpaConfig.class,
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	SubscriptionChannelConfig.class,
	ThreadPoolFactoryConfig.class
})
public class ServerConfig {

	static boolean flag(String name, boolean dflt) {
		String v = System.getProperty("fhirsync." + name);
		return v == null ? dflt : Boolean.parseBoolean(v);
	}

	@Bean
	public DataSource dataSource() {
		BasicDataSource ds = new BasicDataSource();
		ds.setDriver(new org.h2.Driver());
		// In memory; DB_CLOSE_DELAY keeps it while the pool has no open connection.
		ds.setUrl(System.getProperty("fhirsync.jdbcUrl", "jdbc:h2:mem:fhirsync;DB_CLOSE_DELAY=-1"));
		ds.setUsername("sa");
		ds.setPassword("");
		ds.setMaxTotal(Integer.getInteger("fhirsync.dbConnections", 10));
		return ds;
	}

	@Bean
	public JpaStorageSettings storageSettings() {
		JpaStorageSettings s = new JpaStorageSettings();
		// HAPI's defaults, stated where our tests rely on them: references must resolve on write,
		// deletes are allowed and keep history, ids are client-assigned by PUT.
		s.setEnforceReferentialIntegrityOnWrite(flag("referentialIntegrity", true));
		// Off on its own for the audit trail: its Provenance and AuditEvents reference what they record,
		// and with it on HAPI refuses to delete anything they name (409), as the README says.
		s.setEnforceReferentialIntegrityOnDelete(flag("referentialIntegrityOnDelete", flag("referentialIntegrity", true)));
		s.setDeleteEnabled(true);
		s.setAllowMultipleDelete(false);
		s.setExpungeEnabled(false);
		s.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC);
		s.setAllowExternalReferences(false);
		s.setAdvancedHSearchIndexing(false);
		s.setHibernateSearchIndexFullText(false);
		s.setHibernateSearchIndexSearchParams(false);
		s.setDefaultSearchParamsCanBeOverridden(true);
		return s;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	@Bean
	public SubscriptionSettings subscriptionSettings() {
		return new SubscriptionSettings();
	}

	@Bean
	public IBinaryStorageSvc binaryStorageSvc() {
		return new MemoryBinaryStorageSvcImpl();
	}

	@Bean
	@Primary
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			ConfigurableListableBeanFactory beanFactory, FhirContext fhirContext, JpaStorageSettings storageSettings) {
		LocalContainerEntityManagerFactoryBean emf =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		emf.setPersistenceUnitName("FHIRSYNC_HAPI");
		emf.setDataSource(dataSource());
		Properties p = new Properties();
		p.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
		p.put("hibernate.hbm2ddl.auto", "update");
		p.put("hibernate.format_sql", "false");
		p.put("hibernate.show_sql", "false");
		p.put("hibernate.jdbc.batch_size", "20");
		p.put("hibernate.cache.use_query_cache", "false");
		p.put("hibernate.cache.use_second_level_cache", "false");
		p.put("hibernate.search.enabled", "false");
		emf.setJpaProperties(p);
		return emf;
	}

	@Bean
	@Primary
	public JpaTransactionManager transactionManager(EntityManagerFactory emf) {
		JpaTransactionManager tm = new JpaTransactionManager();
		tm.setEntityManagerFactory(emf);
		return tm;
	}

	@Bean
	public RestfulServer restfulServer(
			IFhirSystemDao<?, ?> systemDao,
			ResourceProviderFactory resourceProviders,
			IJpaSystemProvider systemProvider,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport,
			DatabaseBackedPagingProvider pagingProvider,
			IInstanceValidatorModule instanceValidator) {
		FhirContext ctx = systemDao.getContext();
		ctx.setNarrativeGenerator(new NullNarrativeGenerator());
		RestfulServer server = new RestfulServer(ctx);
		server.registerProviders(resourceProviders.createProviders());
		server.registerProvider(systemProvider);
		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, systemDao, storageSettings, searchParamRegistry, validationSupport);
		capabilities.setImplementationDescription("fhirsync HAPI FHIR R4 test server");
		server.setServerConformanceProvider(capabilities);
		server.setDefaultResponseEncoding(EncodingEnum.JSON);
		pagingProvider.setDefaultPageSize(Integer.getInteger("fhirsync.defaultPageSize", 20));
		pagingProvider.setMaximumPageSize(Integer.getInteger("fhirsync.maxPageSize", 200));
		server.setPagingProvider(pagingProvider);

		if (flag("validateRequests", true)) {
			// HL7's validator (FhirInstanceValidator behind HAPI's JPA validation support chain) judges
			// every resource in a create, update or bundle; an ERROR rejects the request with 422.
			JudgingValidator validating = new JudgingValidator();
			validating.addValidatorModule(instanceValidator);
			validating.setFailOnSeverity(ResultSeverityEnum.ERROR);
			validating.setAddResponseHeaderOnSeverity(null);
			validating.setAddResponseOutcomeHeaderOnSeverity(null);
			validating.setResponseHeaderValueNoIssues(null);
			server.registerInterceptor(validating);
		}
		return server;
	}
}
