-- A database per service: nobody reads another's tables.
CREATE DATABASE registry;
CREATE DATABASE assessment;
CREATE DATABASE incentives;
